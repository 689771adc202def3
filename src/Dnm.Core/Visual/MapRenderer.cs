using Dnm.Core.Data;
using Dnm.Core.Som;

namespace Dnm.Core.Visual;

/// <summary>
/// PNG pictures of a trained map: the decoded prototypes laid out as the lattice, the majority-label
/// map with a legend, and the U-matrix with a colour bar. Node j is drawn at row j / cols, column j % cols; on a hex
/// lattice the odd rows are shifted half a cell to the right (offset cells, <see cref="CellLeft"/>), so each cell
/// touches exactly its 6 neighbours. A toroidal map is drawn cut open along its top and left edges.
/// </summary>
public static partial class MapRenderer
{
    /// <summary>Small maps are scaled up by a whole factor until they are at least this wide.</summary>
    public const int MinWidth = 400;

    // Grey between the cells: distinct from the black backgrounds and white strokes of digit images.
    private const byte PaddingGrey = 96;

    /// <summary>
    /// Draws the decoder's image of every prototype as a lattice of tiles. <paramref name="images"/> holds
    /// rows·cols images, C×H×W each, pixel values in [0,1] (clamped; NaN is drawn black). One channel is
    /// drawn grey, three as RGB. Tiles are <paramref name="cellPadding"/> pixels apart, and the whole
    /// picture is scaled up by an integer factor (nearest neighbour) to at least <see cref="MinWidth"/>.
    /// </summary>
    public static void RenderPrototypes(string path, ReadOnlySpan<float> images, MapGrid grid, ImageShape shape, int cellPadding = 1)
    {
        ArgumentNullException.ThrowIfNull(shape);
        ArgumentNullException.ThrowIfNull(grid);
        var (rows, cols) = (grid.Rows, grid.Cols);
        ArgumentOutOfRangeException.ThrowIfNegative(cellPadding);
        if (shape.Channels is not (1 or 3))
            throw new ArgumentException($"Only 1- or 3-channel images can be drawn, not {shape}.", nameof(shape));
        var nodes = rows * cols;
        if (images.Length != nodes * shape.Pixels)
            throw new ArgumentException($"Expected {nodes} images of {shape} = {nodes * shape.Pixels} floats, got {images.Length}.", nameof(images));

        int tileWidth = shape.Width + cellPadding, tileHeight = shape.Height + cellPadding;
        int baseWidth = LatticeWidth(grid, tileWidth) + cellPadding, baseHeight = rows * tileHeight + cellPadding;
        var scale = PngFile.UpscaleFactor(baseWidth, MinWidth);
        int width = baseWidth * scale, height = baseHeight * scale;

        var rgba = new byte[checked(width * height * 4)];
        for (var i = 0; i < rgba.Length; i += 4)
            (rgba[i], rgba[i + 1], rgba[i + 2], rgba[i + 3]) = (PaddingGrey, PaddingGrey, PaddingGrey, 255);

        var plane = shape.Height * shape.Width;
        for (var node = 0; node < nodes; node++)
        {
            var image = images.Slice(node * shape.Pixels, shape.Pixels);
            int left = cellPadding + CellLeft(grid, node, tileWidth), top = cellPadding + node / cols * tileHeight;
            for (var y = 0; y < shape.Height; y++)
            {
                for (var x = 0; x < shape.Width; x++)
                {
                    var p = y * shape.Width + x;
                    var r = ToByte(image[p]);
                    // Channel-first layout: the green and blue planes follow the red one.
                    var (g, b) = shape.Channels == 3 ? (ToByte(image[plane + p]), ToByte(image[2 * plane + p])) : (r, r);
                    FillBlock(rgba, width, (left + x) * scale, (top + y) * scale, scale, r, g, b);
                }
            }
        }

        using var bitmap = PngFile.FromRgba(rgba, width, height);
        PngFile.Save(bitmap, path);
    }

    private static byte ToByte(float v) => float.IsNaN(v) ? (byte)0 : (byte)MathF.Round(Math.Clamp(v, 0f, 1f) * 255f);

    private static void FillBlock(byte[] rgba, int width, int x0, int y0, int size, byte r, byte g, byte b)
    {
        for (var y = y0; y < y0 + size; y++)
        {
            for (var x = x0; x < x0 + size; x++)
            {
                var i = (y * width + x) * 4;
                (rgba[i], rgba[i + 1], rgba[i + 2], rgba[i + 3]) = (r, g, b, 255);
            }
        }
    }

    /// <summary>Side of one node's square in the label map and U-matrix: large enough for a ~400 px wide map.</summary>
    internal static int CellSize(int cols) => Math.Max(16, (MinWidth + cols - 1) / cols);

    /// <summary>
    /// The left edge of <paramref name="node"/>'s cell, cells being <paramref name="cellWidth"/> pixels wide: column ×
    /// width, plus half a cell on the odd rows of a hex lattice (odd-r offset rows, as <see cref="MapGrid.Centre"/>).
    /// </summary>
    internal static int CellLeft(MapGrid grid, int node, int cellWidth) =>
        grid.Col(node) * cellWidth + (grid.Lattice == LatticeKind.Hex && (grid.Row(node) & 1) == 1 ? cellWidth / 2 : 0);

    /// <summary>The width the lattice's cells cover: a hex lattice of two or more rows is half a cell wider.</summary>
    internal static int LatticeWidth(MapGrid grid, int cellWidth) =>
        grid.Cols * cellWidth + (grid.Lattice == LatticeKind.Hex && grid.Rows > 1 ? cellWidth / 2 : 0);
}
