"""Server-rendered web pages: the public register, the receipt page and the supervisor console."""
