from unimm.cli import main

main()
