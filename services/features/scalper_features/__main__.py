from scalper_features.main import main

main()
