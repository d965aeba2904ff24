"""pacsguard.verify"""
