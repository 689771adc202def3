using Dnm.Core.Som;

namespace Dnm.Core.Tests.Som;

/// <summary>
/// The lattice geometry against values worked out by hand. Odd-r hex: odd rows sit half a cell right, rows √3/2 apart.
/// <code>
/// 3x3 hex                    4x4 hex (torus)
///  0   1   2                  0   1   2   3
///    3   4   5                  4   5   6   7
///  6   7   8                  8   9  10  11
///                                12  13  14  15
/// </code>
/// </summary>
public sealed class MapGridSpec
{
    private static readonly MapGrid Hex3 = new(3, 3, LatticeKind.Hex);
    private static readonly MapGrid HexTorus4 = new(4, 4, LatticeKind.Hex, toroidal: true);

    [Fact]
    public void Hex_neighbours_should_follow_the_row_parity_of_odd_r_offsets()
    {
        Assert.Equal([1, 2, 3, 5, 7, 8], Hex3.Neighbours(4)); // odd row: columns c and c+1 above and below
        Assert.Equal([1, 3], Hex3.Neighbours(0));
        Assert.Equal([0, 1, 4, 6, 7], Hex3.Neighbours(3));
        Assert.Equal([1, 4, 5], Hex3.Neighbours(2));      // even row: columns c−1 and c below
        Assert.Equal([3, 7], Hex3.Neighbours(6));
        Assert.Equal([3, 4, 6, 8], Hex3.Neighbours(7));
        Assert.Equal([2, 4, 8], Hex3.Neighbours(5));
    }

    [Fact]
    public void Hex_squared_distances_should_be_the_plane_distances_of_the_cell_centres()
    {
        Assert.Equal(1.0, Hex3.SquaredDistance(4, 2));  // (1.5, √3/2) to (2, 0): ¼ + ¾
        Assert.Equal(3.0, Hex3.SquaredDistance(0, 4));  // 1.5² + ¾
        Assert.Equal(4.0, Hex3.SquaredDistance(0, 2));
        Assert.Equal(3.0, Hex3.SquaredDistance(0, 6));  // two rows: 4·¾
        Assert.Equal(7.0, Hex3.SquaredDistance(0, 8));  // 2² + 3
        Assert.Equal(7.0, Hex3.SquaredDistance(0, 5));  // 2.5² + ¾
        Assert.Equal((2.5, Math.Sqrt(3) / 2), Hex3.Centre(5));
        for (var a = 0; a < Hex3.Nodes; a++)
            for (var b = 0; b < Hex3.Nodes; b++)
            {
                var (ax, ay) = Hex3.Centre(a);
                var (bx, by) = Hex3.Centre(b);
                Assert.Equal((ax - bx) * (ax - bx) + (ay - by) * (ay - by), Hex3.SquaredDistance(a, b), 12);
            }
    }

    [Fact]
    public void A_hex_torus_should_wrap_rows_and_columns_and_give_every_node_six_neighbours()
    {
        // Node 0's wrapped neighbours: 3 (left), 12 and 15 (the row above, row 3, odd), 7 (row 1's last, x = 3.5 − 4).
        Assert.Equal([1, 3, 4, 7, 12, 15], HexTorus4.Neighbours(0));
        Assert.Equal([0, 3, 4, 6, 8, 11], HexTorus4.Neighbours(7));
        Assert.Equal(1.0, HexTorus4.SquaredDistance(0, 15));
        Assert.Equal(1.0, HexTorus4.SquaredDistance(0, 7));
        Assert.Equal(3.0, HexTorus4.SquaredDistance(0, 13)); // (1.5, −√3/2) by the top edge
        Assert.Equal(7.0, HexTorus4.SquaredDistance(0, 10)); // 2² + 4·¾: no shorter way round
        Assert.Equal(4.0, HexTorus4.SquaredDistance(0, 2));
        for (var node = 0; node < HexTorus4.Nodes; node++) Assert.Equal(6, HexTorus4.Neighbours(node).Length);
    }

    [Fact]
    public void A_rect_torus_should_wrap_and_count_a_neighbour_reached_two_ways_once()
    {
        var torus = new MapGrid(3, 4, LatticeKind.Rect, toroidal: true);
        Assert.Equal([1, 3, 4, 8], torus.Neighbours(0));
        Assert.Equal(2.0, torus.SquaredDistance(0, 11)); // one row up, one column left
        Assert.Equal(4.0, torus.SquaredDistance(0, 2));
        Assert.Equal(13.0, new MapGrid(3, 4).SquaredDistance(0, 11)); // flat: 2² + 3²
        // Two columns: left and right of node 0 are both node 1.
        Assert.Equal([1, 2, 4], new MapGrid(3, 2, LatticeKind.Rect, toroidal: true).Neighbours(0));
        Assert.Equal([1, 3, 5, 7], new MapGrid(3, 3).Neighbours(4));
        Assert.Equal([1, 3], new MapGrid(3, 3).Neighbours(0));
    }

    [Theory]
    [InlineData(LatticeKind.Rect, false)]
    [InlineData(LatticeKind.Rect, true)]
    [InlineData(LatticeKind.Hex, false)]
    [InlineData(LatticeKind.Hex, true)]
    public void Neighbours_should_be_exactly_the_nodes_at_distance_one_and_distances_symmetric(LatticeKind lattice, bool toroidal)
    {
        foreach (var (rows, cols) in new[] { (1, 1), (1, 5), (2, 2), (2, 3), (3, 4), (4, 5), (6, 3) })
        {
            if (MapGrid.Problem(rows, cols, lattice, toroidal) is not null) continue;
            var grid = new MapGrid(rows, cols, lattice, toroidal);
            for (var a = 0; a < grid.Nodes; a++)
            {
                var atOne = Enumerable.Range(0, grid.Nodes).Where(b => grid.Adjacent(a, b)).ToArray();
                Assert.Equal(atOne, grid.Neighbours(a));
                Assert.Equal(0.0, grid.SquaredDistance(a, a));
                for (var b = 0; b < grid.Nodes; b++) Assert.Equal(grid.SquaredDistance(a, b), grid.SquaredDistance(b, a));
            }
        }
    }

    [Fact]
    public void A_hex_torus_needs_an_even_row_count()
    {
        Assert.Null(MapGrid.Problem(4, 5, LatticeKind.Hex, toroidal: true));
        Assert.Null(MapGrid.Problem(5, 5, LatticeKind.Hex, toroidal: false));
        Assert.Null(MapGrid.Problem(5, 5, LatticeKind.Rect, toroidal: true));
        Assert.Equal("a toroidal hex lattice needs an even number of rows (odd-r offset rows repeat every two), got map 5x5: use 6x5 or 4x5",
            MapGrid.Problem(5, 5, LatticeKind.Hex, toroidal: true));
    }
}
