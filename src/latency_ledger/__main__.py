from latency_ledger.cli import main

main()
