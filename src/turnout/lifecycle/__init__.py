"""turnout.lifecycle"""
