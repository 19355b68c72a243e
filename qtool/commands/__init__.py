"""One module per qtool subcommand, each with add_arguments(parser) and run(options) -> int."""
