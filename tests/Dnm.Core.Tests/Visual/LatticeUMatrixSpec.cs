using Dnm.Core.Som;
using Dnm.Core.Visual;

namespace Dnm.Core.Tests.Visual;

/// <summary>
/// The U-matrix on hex and toroidal lattices, against means worked out by hand. The prototypes are 1-D, w_j = j², so
/// every neighbour set gives its own mean: a node that averaged the wrong neighbours (MiniSom's hex U-matrix used one
/// row parity's offsets for both, issue #166) would not match.
/// </summary>
public sealed class LatticeUMatrixSpec
{
    private static readonly float[] Squares = Enumerable.Range(0, 9).Select(j => (float)(j * j)).ToArray();

    [Fact]
    public void A_hex_u_matrix_should_average_each_node_over_its_odd_r_neighbours()
    {
        // Node 4 (odd row): 1, 2, 3, 5, 7, 8 → |16−1| + |16−4| + |16−9| + |25−16| + |49−16| + |64−16| = 124, over 6.
        // Node 3 (odd row, left edge): 0, 1, 4, 6, 7 → 9 + 8 + 7 + 27 + 40 = 91, over 5.
        // Node 6 (even row, left edge): 3, 7 → 27 + 13 = 40, over 2. Node 8 (even, right edge): 4, 5, 7 → 48 + 39 + 15.
        float[] expected = [5f, 6.75f, 12f, 18.2f, 124f / 6, 23f, 20f, 25.25f, 34f];
        var u = MapRenderer.UMatrix(Squares, new MapGrid(3, 3, LatticeKind.Hex), dim: 1);
        Assert.Equal(expected, u, (a, b) => Math.Abs(a - b) < 1e-5f);
        // The rect U-matrix of the same prototypes differs: node 4 averages 1, 3, 5, 7 only (15 + 7 + 9 + 33 = 64, over 4).
        Assert.Equal(16f, MapRenderer.UMatrix(Squares, new MapGrid(3, 3), dim: 1)[4], 5);
    }

    [Fact]
    public void A_toroidal_u_matrix_should_give_every_node_its_wrapped_neighbours()
    {
        var torus = MapRenderer.UMatrix(Squares, new MapGrid(3, 3, LatticeKind.Rect, toroidal: true), dim: 1);
        // Node 0: 1, 2, 3, 6 → 1 + 4 + 9 + 36 = 50, over 4 (flat: 1 and 3 only, (1 + 9) / 2 = 5).
        Assert.Equal(12.5f, torus[0], 5);
        Assert.Equal(16f, torus[4], 5);
        // Node 8: 2, 5, 6, 7 → 60 + 39 + 28 + 15 = 142, over 4.
        Assert.Equal(35.5f, torus[8], 5);
        // A 4x4 hex torus: node 0 averages 1, 3, 4, 7, 12, 15 → 1 + 9 + 16 + 49 + 144 + 225 = 444, over 6.
        var squares16 = Enumerable.Range(0, 16).Select(j => (float)(j * j)).ToArray();
        Assert.Equal(74f, MapRenderer.UMatrix(squares16, new MapGrid(4, 4, LatticeKind.Hex, toroidal: true), dim: 1)[0], 4);
    }
}
