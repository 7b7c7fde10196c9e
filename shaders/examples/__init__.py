"""Example kernels: one of each kind of thing the language does. Each compiles to every target."""
