using System.Globalization;
using Dnm.Core.Som;
using SkiaSharp;

namespace Dnm.Core.Visual;

public static partial class MapRenderer
{
    /// <summary>Component planes are drawn for latent sizes up to this; past it the picture is a wall of thumbnails.</summary>
    public const int MaxComponentPlanes = 16;

    /// <summary>Each component plane is scaled up by a whole factor until it is at least this wide.</summary>
    internal const int PlaneMinWidth = 160;

    /// <summary>Room above each component plane for its title, whatever the font.</summary>
    internal const int PlaneTitleHeight = 18;

    internal const float PlaneTextSize = 12f;

    /// <summary>How many of <paramref name="bmu"/>'s samples each of the <paramref name="nodes"/> nodes is the BMU of.</summary>
    public static int[] HitCounts(ReadOnlySpan<int> bmu, int nodes)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(nodes);
        var counts = new int[nodes];
        for (var i = 0; i < bmu.Length; i++)
        {
            if ((uint)bmu[i] >= (uint)nodes)
                throw new ArgumentOutOfRangeException(nameof(bmu), $"Node {bmu[i]} of sample {i} is outside 0..{nodes - 1}.");
            counts[bmu[i]]++;
        }
        return counts;
    }

    /// <summary>
    /// The hit map: each node coloured by how many samples it is the BMU of (viridis from 0 to the most, so dead nodes
    /// are the darkest), the count written in every square wide enough for it, and a colour bar on the right.
    /// </summary>
    public static void RenderHitMap(string path, ReadOnlySpan<int> bmu, MapGrid grid)
    {
        using var text = TextPainter.Create(TextSize);
        RenderHitMap(path, bmu, grid, text);
    }

    internal static void RenderHitMap(string path, ReadOnlySpan<int> bmu, MapGrid grid, ITextPainter text)
    {
        ArgumentNullException.ThrowIfNull(grid);
        RenderHitMap(path, HitCounts(bmu, grid.Nodes).Select(c => (long)c).ToArray(), grid, text);
    }

    /// <summary>The hit map from counts already made: <paramref name="hits"/>[j] samples have node j as their BMU.</summary>
    public static void RenderHitMap(string path, long[] hits, MapGrid grid)
    {
        using var text = TextPainter.Create(TextSize);
        RenderHitMap(path, hits, grid, text);
    }

    internal static void RenderHitMap(string path, long[] hits, MapGrid grid, ITextPainter text)
    {
        ArgumentNullException.ThrowIfNull(grid);
        if (hits.Length != grid.Nodes) throw new ArgumentException($"Expected {grid.Nodes} hit counts, got {hits.Length}.", nameof(hits));
        RenderHeatMap(path, hits.Select(c => (float)c).ToArray(), grid, text,
            node => hits[node].ToString(CultureInfo.InvariantCulture), minimum: 0);
    }

    /// <summary>
    /// The component planes: for each latent dimension k, the lattice with node j coloured by w_jk (viridis from that
    /// dimension's minimum to its maximum), titled with k and the range. Planes are laid out in a near-square grid,
    /// row by row, each at least <see cref="PlaneMinWidth"/> pixels wide. Meant for <paramref name="dim"/> up to
    /// <see cref="MaxComponentPlanes"/>.
    /// </summary>
    public static void RenderComponentPlanes(string path, ReadOnlySpan<float> w, MapGrid grid, int dim)
    {
        using var text = TextPainter.Create(PlaneTextSize);
        RenderComponentPlanes(path, w, grid, dim, text);
    }

    internal static void RenderComponentPlanes(string path, ReadOnlySpan<float> w, MapGrid grid, int dim, ITextPainter text)
    {
        ArgumentNullException.ThrowIfNull(grid);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(dim);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(dim, MaxComponentPlanes);
        if (w.Length != grid.Nodes * dim)
            throw new ArgumentException($"Expected {grid.Nodes} prototypes of {dim} floats, got {w.Length} floats.", nameof(w));

        var layout = PlaneLayout.For(grid, dim);
        using var bitmap = PngFile.White(layout.Width, layout.Height);
        using (var canvas = new SKCanvas(bitmap))
        using (var fill = new SKPaint { Style = SKPaintStyle.Fill, IsAntialias = false })
        {
            var nodes = grid.Nodes;
            for (var k = 0; k < dim; k++)
            {
                float min = float.PositiveInfinity, max = float.NegativeInfinity;
                for (var node = 0; node < nodes; node++)
                {
                    min = Math.Min(min, w[node * dim + k]);
                    max = Math.Max(max, w[node * dim + k]);
                }
                var (left, top) = layout.PlaneOrigin(k);
                for (var node = 0; node < nodes; node++)
                {
                    var v = w[node * dim + k];
                    fill.Color = Palettes.Viridis(max > min ? (v - min) / (double)(max - min) : 0.5);
                    canvas.DrawRect(left + CellLeft(grid, node, layout.Cell), top + grid.Row(node) * layout.Cell, layout.Cell, layout.Cell, fill);
                }
                var title = string.Create(CultureInfo.InvariantCulture, $"z{k}: {min:G3} .. {max:G3}");
                if (text.Measure(title) > layout.PlaneWidth) title = string.Create(CultureInfo.InvariantCulture, $"z{k}");
                text.Draw(canvas, title, left, top - PlaneTitleHeight + (PlaneTitleHeight - 2 - text.LineHeight) / 2, SKColors.Black);
            }
        }
        PngFile.Save(bitmap, path);
    }

    /// <summary>Where the component planes go: a grid of GridCols × GridRows planes of Cell-pixel nodes, each with its title above.</summary>
    internal readonly record struct PlaneLayout(MapGrid Lattice, int GridRows, int GridCols, int Cell)
    {
        public static PlaneLayout For(MapGrid grid, int dim)
        {
            var gridCols = (int)Math.Ceiling(Math.Sqrt(dim));
            return new PlaneLayout(grid, (dim + gridCols - 1) / gridCols, gridCols, PngFile.UpscaleFactor(grid.Cols, PlaneMinWidth));
        }

        public int PlaneWidth => LatticeWidth(Lattice, Cell);
        public int PlaneHeight => Lattice.Rows * Cell;
        public int Width => 2 * Margin + GridCols * PlaneWidth + (GridCols - 1) * Margin;
        public int Height => 2 * Margin + GridRows * (PlaneTitleHeight + PlaneHeight) + (GridRows - 1) * Margin;

        /// <summary>The top-left pixel of plane <paramref name="k"/>'s nodes (its title is above).</summary>
        public (int Left, int Top) PlaneOrigin(int k) =>
            (Margin + k % GridCols * (PlaneWidth + Margin), Margin + k / GridCols * (PlaneTitleHeight + PlaneHeight + Margin) + PlaneTitleHeight);
    }
}
