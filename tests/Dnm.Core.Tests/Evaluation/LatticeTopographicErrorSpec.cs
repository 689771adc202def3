using Dnm.Core.Evaluation;
using Dnm.Core.Som;

namespace Dnm.Core.Tests.Evaluation;

/// <summary>
/// The topographic error on each lattice, against pairs checked by hand on the pictures of <see cref="Som.MapGridSpec"/>:
/// a hex lattice's diagonal neighbours follow the row's parity (MiniSom's TE counted hex maps as square ones, issue
/// #152), and on a torus the pairs across an edge are neighbours.
/// </summary>
public sealed class LatticeTopographicErrorSpec
{
    // (first, second) BMUs on a 3x3 map. On hex: 4-2 and 3-1 are neighbours (odd row 1 reaches columns c and c+1 of row
    // 0), 3-4 too; 0-4 (distance √3) and 6-4 (row 2 even reaches columns c−1 and c) are not. On rect only 3-4 is.
    private static readonly int[] First3 = [4, 0, 3, 3, 6];
    private static readonly int[] Second3 = [2, 4, 1, 4, 4];

    [Fact]
    public void Hex_should_count_the_six_neighbours_of_odd_r_rows_as_adjacent()
    {
        Assert.Equal(2.0 / 5, MapMetrics.TopographicError(First3, Second3, new MapGrid(3, 3, LatticeKind.Hex)));
        Assert.Equal(4.0 / 5, MapMetrics.TopographicError(First3, Second3, new MapGrid(3, 3)));
    }

    [Fact]
    public void A_rect_torus_should_count_pairs_across_an_edge_as_adjacent()
    {
        // 3x4: 0-3 (left edge to right edge) and 0-8 (top to bottom) wrap; 0-5 is diagonal; 1-2 is adjacent anyway.
        int[] first = [0, 0, 0, 1], second = [3, 8, 5, 2];
        Assert.Equal(3.0 / 4, MapMetrics.TopographicError(first, second, new MapGrid(3, 4)));
        Assert.Equal(1.0 / 4, MapMetrics.TopographicError(first, second, new MapGrid(3, 4, LatticeKind.Rect, toroidal: true)));
    }

    [Fact]
    public void A_hex_torus_should_count_its_wrapped_neighbours_as_adjacent()
    {
        // 4x4: 0-15 and 0-7 are neighbours only across an edge; 0-10 is two rows and two columns away either way.
        int[] first = [0, 0, 0], second = [15, 7, 10];
        Assert.Equal(1.0, MapMetrics.TopographicError(first, second, new MapGrid(4, 4, LatticeKind.Hex)));
        Assert.Equal(1.0 / 3, MapMetrics.TopographicError(first, second, new MapGrid(4, 4, LatticeKind.Hex, toroidal: true)));
    }
}
