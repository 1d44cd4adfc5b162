from autograder.warm import main

main()
