"""python -m pacsguard"""

from pacsguard.cli import console

console()
