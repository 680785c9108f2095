"""The errors snngraph raises for user mistakes: each names the node, input, pass or line."""


class GraphError(ValueError):
    """A graph, a declaration, an input or a file is invalid. The message names where."""


class PassError(GraphError):
    """A compiler pass failed or produced an invalid graph; the message names the pass and
    the passes that ran before it."""


class LoweringError(GraphError):
    """A node cannot be lowered to a runtime (torch, ONNX); the message names the node."""


class GraphTypeError(GraphError, TypeError):
    """A call with the wrong arguments, where snnTorch raises ``TypeError``: catching either
    ``sg.GraphError`` or ``TypeError`` catches it."""
