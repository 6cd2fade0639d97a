"""elastogan.training"""
