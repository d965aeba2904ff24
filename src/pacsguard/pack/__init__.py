"""pacsguard.pack"""
