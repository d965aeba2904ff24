"""python -m pacsguard"""

from pacsguard.cli import main

main()
