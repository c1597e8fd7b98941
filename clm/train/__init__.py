"""clm.train"""
