from hwprof.cli import main

main()
