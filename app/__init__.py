"""elastogan.app"""
