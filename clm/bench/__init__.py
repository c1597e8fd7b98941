"""clm.bench"""
