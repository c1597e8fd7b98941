"""clm.cli"""
