from oncall_ai.cli import main

main()
