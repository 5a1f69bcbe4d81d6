"""The action runtime: built-in actions, forms, responses, custom-action executors."""
