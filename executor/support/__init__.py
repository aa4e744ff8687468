"""Small tools with no step of the flow of their own."""
