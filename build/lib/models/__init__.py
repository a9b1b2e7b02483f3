"""Trading models, their registry by class name, and the lifecycle stages."""
