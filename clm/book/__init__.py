"""clm.book"""
