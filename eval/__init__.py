"""elastogan.eval"""
