using Dnm.Core.Config;

namespace Dnm.Core.Som;

/// <summary>How the nodes of the map are arranged (config key <c>lattice</c>).</summary>
public enum LatticeKind
{
    /// <summary>A square grid: node (r, c) at (x, y) = (c, r); each node has 4 neighbours.</summary>
    Rect,
    /// <summary>
    /// A hexagonal grid of pointy-top cells in odd-r offset rows: node (r, c) at (x, y) = (c + ½·(r mod 2), r·√3/2), so
    /// odd rows are shifted half a cell to the right and each node has 6 neighbours, all at distance 1.
    /// </summary>
    Hex,
}

/// <summary>
/// The geometry of an R×C map: where each node sits, the lattice distance between two nodes, and which nodes are
/// neighbours. Node j is (row j / C, column j mod C) on every lattice; <see cref="Lattice"/> says where that cell lies in
/// the plane and <see cref="Toroidal"/> whether the edges wrap (the top row then neighbours the bottom one, the left
/// column the right one, as in somoclu and MiniSom). Neighbour spacing is 1 on both lattices, so σ means the same
/// number of neighbours on either.
/// </summary>
/// <remarks>
/// Every distance on the grid comes from here: the Kohonen kernel of SOM pre-training and of the joint phase
/// (<see cref="SomLattice"/>), the topographic error's adjacency and the U-matrix's neighbours. Distances are exact: in
/// half-column units x is 2c + (r mod 2), so a squared distance is (Δx/2)² + ¾·Δr², a multiple of ¼. A toroidal hex map
/// needs an even number of rows: with odd-r offsets, rows repeat every two, and only then is row R−1 next to row 0.
/// </remarks>
public sealed record MapGrid
{
    /// <summary>An R×C grid; a size that is no map (<see cref="Problem"/>, non-positive sides) is an <see cref="ArgumentException"/>.</summary>
    public MapGrid(int rows, int cols, LatticeKind lattice = LatticeKind.Rect, bool toroidal = false)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(rows);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(cols);
        if (!Enum.IsDefined(lattice)) throw new ArgumentOutOfRangeException(nameof(lattice), KebabEnum.Problem<LatticeKind>("lattice", lattice.ToString()));
        if (Problem(rows, cols, lattice, toroidal) is { } problem) throw new ArgumentException(problem, nameof(rows));
        (Rows, Cols, Lattice, Toroidal) = (rows, cols, lattice, toroidal);
    }

    public int Rows { get; }
    public int Cols { get; }
    public LatticeKind Lattice { get; }
    public bool Toroidal { get; }
    public int Nodes => Rows * Cols;

    /// <summary>The grid of a config (its map, lattice and toroidal keys).</summary>
    public static MapGrid Of(DnmConfig config) => new(config.MapRows, config.MapCols, config.Lattice, config.Toroidal);

    /// <summary>Why this combination of size, lattice and wrapping is no map, or null.</summary>
    public static string? Problem(int rows, int cols, LatticeKind lattice, bool toroidal)
    {
        if (lattice == LatticeKind.Hex && toroidal && rows % 2 != 0)
            return $"a toroidal hex lattice needs an even number of rows (odd-r offset rows repeat every two), got map {rows}x{cols}: use {rows + 1}x{cols}" +
                   (rows > 1 ? $" or {rows - 1}x{cols}" : "");
        return null;
    }

    public int Row(int node) => node / Cols;
    public int Col(int node) => node % Cols;
    public int Node(int row, int col) => row * Cols + col;

    /// <summary>The centre of <paramref name="node"/>'s cell in the plane, in neighbour spacings (x to the right, y down).</summary>
    public (double X, double Y) Centre(int node)
    {
        int r = Row(node), c = Col(node);
        return Lattice == LatticeKind.Hex ? (c + 0.5 * (r & 1), r * Math.Sqrt(3) / 2) : (c, r);
    }

    /// <summary>‖p_a − p_b‖² on the lattice: the plane distance of the two cells, the shortest way round on a torus.</summary>
    public double SquaredDistance(int a, int b)
    {
        int ra = Row(a), rb = Row(b);
        var dr = Math.Abs(ra - rb);
        if (Toroidal) dr = Math.Min(dr, Rows - dr);
        if (Lattice == LatticeKind.Rect)
        {
            var dc = Math.Abs(Col(a) - Col(b));
            if (Toroidal) dc = Math.Min(dc, Cols - dc);
            return (double)dr * dr + (double)dc * dc;
        }
        // Half-column units: x = 2c + (r mod 2), period 2C. The torus's two periods (C, R·√3/2) are orthogonal, so the
        // shortest image minimises Δx and Δr independently (R even keeps a row's parity, hence its offset).
        var dx = Math.Abs(2 * Col(a) + (ra & 1) - 2 * Col(b) - (rb & 1));
        if (Toroidal) dx = Math.Min(dx, 2 * Cols - dx);
        return 0.25 * dx * dx + 0.75 * dr * dr;
    }

    /// <summary>Whether <paramref name="a"/> and <paramref name="b"/> are distinct neighbours: lattice distance exactly 1.</summary>
    public bool Adjacent(int a, int b) => a != b && SquaredDistance(a, b) == 1.0;

    /// <summary>
    /// The distinct neighbours of <paramref name="node"/>, in increasing order: 4 on a rect lattice and 6 on a hex one away
    /// from the edges, fewer at the edges of a flat map; on a torus every node has them all, except where the map is so
    /// small that two directions reach the same node (a 2-column torus: left and right are one node), which counts once.
    /// </summary>
    public int[] Neighbours(int node)
    {
        int r = Row(node), c = Col(node);
        ReadOnlySpan<(int Dr, int Dc)> offsets = Lattice == LatticeKind.Rect
            ? [(-1, 0), (1, 0), (0, -1), (0, 1)]
            // Odd-r: an even row's diagonal neighbours are in columns c−1 and c, an odd row's in c and c+1.
            : (r & 1) == 0
                ? [(0, -1), (0, 1), (-1, -1), (-1, 0), (1, -1), (1, 0)]
                : [(0, -1), (0, 1), (-1, 0), (-1, 1), (1, 0), (1, 1)];
        var result = new List<int>(6);
        foreach (var (dr, dc) in offsets)
        {
            int nr = r + dr, nc = c + dc;
            if (Toroidal)
            {
                nr = (nr + Rows) % Rows;
                nc = (nc + Cols) % Cols;
            }
            else if (nr < 0 || nr >= Rows || nc < 0 || nc >= Cols)
            {
                continue;
            }
            var n = Node(nr, nc);
            if (n != node && !result.Contains(n)) result.Add(n);
        }
        result.Sort();
        return [.. result];
    }

    /// <summary>The K×K matrix of <see cref="SquaredDistance"/>, row-major, for the Kohonen kernel.</summary>
    public float[] SquaredDistanceMatrix()
    {
        var nodes = Nodes;
        var d = new float[checked(nodes * nodes)];
        Parallel.For(0, nodes, a =>
        {
            for (var b = 0; b < nodes; b++) d[a * nodes + b] = (float)SquaredDistance(a, b);
        });
        return d;
    }

    /// <summary>"10x10 hex lattice, toroidal": how logs and summaries name the map.</summary>
    public override string ToString() => $"{Rows}x{Cols} {KebabEnum.Name(Lattice)} lattice{(Toroidal ? ", toroidal" : "")}";
}
