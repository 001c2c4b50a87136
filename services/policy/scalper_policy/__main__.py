from scalper_policy.main import main

main()
