"""Which inputs of a maxout unit receive gradient? Only the winning piece.

    python examples/maxout_gradients.py

A maxout unit with k pieces outputs the largest of k inputs. Its derivative
is 1 for the winner and 0 for the others, so the backward pass *routes* the
output gradient to one input (on a tie, to the first winner) and the
others receive nothing.  A piece that never wins never learns: this is why
BN in front of maxout, which keeps every piece in the running, matters
(docs/maxout.md).
"""
import numpy

import minidl
import minidl.functional as F


def main():
    x = minidl.tensor(numpy.array([[0.3, -1.2, 2.0,   0.5, 0.5, -0.1],
                                   [1.5, 0.2, -0.4,  -2.0, 1.0, 1.0]]), requires_grad=True)
    y = F.maxout(x, pieces=3)           # channels [0, 1, 2] -> unit 0, [3, 4, 5] -> unit 1
    dy = numpy.array([[10.0, 20.0], [30.0, 40.0]])
    y.backward(dy)

    print("input x (2 samples, 6 channels = 2 units x 3 pieces):")
    print(x.numpy())
    print("\noutput y = max over each group of 3 consecutive channels:")
    print(y.numpy())
    print("\nupstream gradient dL/dy:")
    print(dy)
    print("\ngradient dL/dx: each dy lands on its group's winner only")
    print(x.grad)
    groups, grads = x.numpy().reshape(2, 2, 3), x.grad.reshape(2, 2, 3)
    print("\nwinning pieces per sample and unit:")
    for n in range(2):
        for unit in range(2):
            piece = int(numpy.flatnonzero(grads[n, unit])[0])
            tied = (groups[n, unit] == groups[n, unit].max()).sum() > 1
            tie = " (a tie: the first winner takes it all)" if tied else ""
            print(f"  sample {n}, unit {unit}: piece {piece}{tie}")
    assert numpy.allclose(x.grad.reshape(2, 2, 3).sum(axis=2), dy)
    print("\nthe gradient of each group sums to its dy: nothing is lost or doubled")
    return x.grad


if __name__ == "__main__":
    main()
