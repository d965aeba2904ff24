"""pacsguard.scan"""
