"""pacsguard.sample"""
