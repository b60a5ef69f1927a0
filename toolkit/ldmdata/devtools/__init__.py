"""Tools for developing ldmdata itself (checks that tests and CI run); standard library only."""
