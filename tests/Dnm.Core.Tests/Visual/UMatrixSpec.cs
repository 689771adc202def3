using Dnm.Core.Som;
using Dnm.Core.Visual;

namespace Dnm.Core.Tests.Visual;

public class UMatrixSpec
{
    [Fact]
    public void Should_average_distances_to_lattice_neighbours_on_a_hand_worked_2x2_map()
    {
        // Prototypes (dim 2):  node 0 = (0,0)  node 1 = (3,4)
        //                      node 2 = (0,1)  node 3 = (3,0)
        // Edges: d01 = 5, d02 = 1, d13 = 4, d23 = √10 = 3.1622777
        // u0 = (5 + 1)/2 = 3      u1 = (5 + 4)/2 = 4.5
        // u2 = (1 + √10)/2 = 2.0811388      u3 = (4 + √10)/2 = 3.5811388
        float[] w = [0, 0, 3, 4, 0, 1, 3, 0];

        var u = MapRenderer.UMatrix(w, new MapGrid(2, 2), dim: 2);

        Assert.Equal(4, u.Length);
        Assert.Equal(3f, u[0], 5);
        Assert.Equal(4.5f, u[1], 5);
        Assert.Equal(2.0811388f, u[2], 5);
        Assert.Equal(3.5811388f, u[3], 5);
    }

    [Fact]
    public void Should_use_two_three_or_four_neighbours_by_position()
    {
        // 3×3 map of scalars; the centre (value 0) has neighbours 1, 2, 3, 4 -> mean 2.5.
        // Corner node 0 (value 9) has neighbours node 1 (1) and node 3 (2) -> (8 + 7)/2 = 7.5.
        // Edge node 1 (value 1) has neighbours 0 (9), 2 (9), 4 (0) -> (8 + 8 + 1)/3 = 17/3.
        float[] w = [9, 1, 9,
                     2, 0, 3,
                     9, 4, 9];

        var u = MapRenderer.UMatrix(w, new MapGrid(3, 3), dim: 1);

        Assert.Equal(2.5f, u[4], 5);
        Assert.Equal(7.5f, u[0], 5);
        Assert.Equal(17f / 3f, u[1], 5);
    }

    [Fact]
    public void Should_give_a_single_node_zero()
    {
        Assert.Equal(new[] { 0f }, MapRenderer.UMatrix([1f, 2f], new MapGrid(1, 1), dim: 2));
    }
}
