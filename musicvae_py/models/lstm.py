"""Recurrent building blocks: bidirectional encoders (flat and per bar), the categorical LSTM
decoder, and the conductor of the hierarchical decoder."""

import torch
from torch import nn

LstmState = list[tuple[torch.Tensor, torch.Tensor]]  # per layer (h, c), each [batch, size]


class BidirectionalLstmEncoder(nn.Module):
    """A stack of bidirectional LSTM layers; the encoding is the top layer's final forward and
    backward hidden states, concatenated."""

    def __init__(self, input_size: int, sizes: tuple[int, ...]):
        super().__init__()
        layers, width = [], input_size
        for size in sizes:
            layers.append(nn.LSTM(width, size, batch_first=True, bidirectional=True))
            width = 2 * size
        self.layers = nn.ModuleList(layers)
        self.output_size = width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [batch, steps, input_size] -> [batch, 2 * sizes[-1]]."""
        h_n = None
        for layer in self.layers:
            x, (h_n, _) = layer(x)
        return torch.cat([h_n[0], h_n[1]], dim=-1)


class HierarchicalLstmEncoder(nn.Module):
    """Two bidirectional levels: the lower encodes each bar on its own, the upper reads the
    sequence of bar encodings; the encoding is the upper level's final states, concatenated."""

    def __init__(
        self,
        input_size: int,
        bar_sizes: tuple[int, ...],
        upper_sizes: tuple[int, ...],
        bar_steps: int,
    ):
        super().__init__()
        self.bar_steps = bar_steps
        self.lower = BidirectionalLstmEncoder(input_size, bar_sizes)
        self.upper = BidirectionalLstmEncoder(self.lower.output_size, upper_sizes)
        self.output_size = self.upper.output_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [batch, steps, input_size], steps a whole number of bars -> [batch, output_size]."""
        batch, steps, width = x.shape
        bars = steps // self.bar_steps
        per_bar = self.lower(x.reshape(batch * bars, self.bar_steps, width))
        return self.upper(per_bar.reshape(batch, bars, -1))


class LstmDecoder(nn.Module):
    """A unidirectional LSTM stack whose initial state comes from a conditioning vector
    (dense + tanh) and which reads that vector beside its input at every step."""

    def __init__(self, input_size: int, cond_size: int, sizes: tuple[int, ...], out_size: int):
        super().__init__()
        self.sizes = sizes
        self.layers = lstm_stack(input_size + cond_size, sizes)
        self.initial_state = initial_state_layer(cond_size, sizes)
        self.output = nn.Linear(sizes[-1], out_size)

    def init_state(self, cond: torch.Tensor) -> LstmState:
        """cond: [batch, cond_size] -> per layer (h, c), split from one dense + tanh output."""
        return split_state(torch.tanh(self.initial_state(cond)), self.sizes)

    def forward(
        self, inputs: torch.Tensor, cond: torch.Tensor, state: LstmState
    ) -> tuple[torch.Tensor, LstmState]:
        """inputs: [batch, steps, input_size], cond: [batch, cond_size].

        Returns logits [batch, steps, out_size] and the final state.
        """
        x = torch.cat([inputs, cond[:, None, :].expand(-1, inputs.shape[1], -1)], dim=-1)
        new_state = []
        for layer, (h, c) in zip(self.layers, state, strict=True):
            x, (h, c) = layer(x, (h[None].contiguous(), c[None].contiguous()))
            new_state.append((h[0], c[0]))
        return self.output(x), new_state


class Conductor(nn.Module):
    """The upper level of the hierarchical decoder: an LSTM stack that starts from z
    (dense + tanh) and reads all-zero inputs, emitting one embedding per bar."""

    def __init__(self, z_size: int, sizes: tuple[int, ...]):
        super().__init__()
        self.sizes = sizes
        self.layers = lstm_stack(1, sizes)
        self.initial_state = initial_state_layer(z_size, sizes)
        self.output_size = sizes[-1]

    def forward(self, z: torch.Tensor, bars: int) -> torch.Tensor:
        """z: [batch, z_size] -> bar embeddings [batch, bars, sizes[-1]]."""
        state = split_state(torch.tanh(self.initial_state(z)), self.sizes)
        x = z.new_zeros(z.shape[0], bars, 1)
        for layer, (h, c) in zip(self.layers, state, strict=True):
            x, _ = layer(x, (h[None].contiguous(), c[None].contiguous()))
        return x


def split_state(flat: torch.Tensor, sizes: tuple[int, ...]) -> LstmState:
    """One dense output [batch, 2 * sum(sizes)] -> per layer (h, c), each [batch, size]; the
    layout per layer is c first, then h."""
    state, offset = [], 0
    for size in sizes:
        c = flat[:, offset : offset + size]
        h = flat[:, offset + size : offset + 2 * size]
        state.append((h, c))
        offset += 2 * size
    return state


def lstm_stack(input_size: int, sizes: tuple[int, ...]) -> nn.ModuleList:
    """Unidirectional LSTM layers of `sizes`, each reading the one below ([batch, steps, *])."""
    widths = (input_size, *sizes[:-1])
    return nn.ModuleList(
        nn.LSTM(w, size, batch_first=True) for w, size in zip(widths, sizes, strict=True)
    )


def initial_state_layer(cond_size: int, sizes: tuple[int, ...]) -> nn.Linear:
    """The dense layer from a conditioning vector to every layer's (c, h) (see `split_state`),
    initialised near zero so the first states barely depend on the conditioning."""
    layer = nn.Linear(cond_size, 2 * sum(sizes))
    nn.init.normal_(layer.weight, std=0.001)
    nn.init.zeros_(layer.bias)
    return layer
