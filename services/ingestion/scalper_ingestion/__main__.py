from scalper_ingestion.main import main

main()
