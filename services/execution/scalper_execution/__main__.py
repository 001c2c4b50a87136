from scalper_execution.main import main

main()
