from w2p_eval.cli import main

main()
