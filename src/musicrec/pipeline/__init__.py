"""One module per DVC stage (stage name = module name); ``runner`` is the stage scripts' error plumbing."""
