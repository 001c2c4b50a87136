"""The pure domain core: no I/O, no clocks, no globals that change. Every service imports from here."""
