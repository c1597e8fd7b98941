"""clm.eval"""
