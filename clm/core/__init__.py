"""clm.core"""
