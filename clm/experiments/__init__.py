"""clm.experiments"""
