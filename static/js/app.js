// Keyboard shortcuts and small behaviours, wired through data- attributes (no inline script).
