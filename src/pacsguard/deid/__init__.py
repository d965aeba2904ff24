"""pacsguard.deid"""
