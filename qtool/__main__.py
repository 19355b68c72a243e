from .client import console

console()
