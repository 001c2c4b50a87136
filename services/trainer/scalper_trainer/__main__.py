from scalper_trainer.main import main

main()
