"""pacsguard.tables"""
