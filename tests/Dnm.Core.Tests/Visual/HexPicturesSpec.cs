using Dnm.Core.Data;
using Dnm.Core.Som;
using Dnm.Core.Visual;
using SkiaSharp;

namespace Dnm.Core.Tests.Visual;

/// <summary>
/// The pictures of a hex map draw offset cells: the odd rows half a cell to the right, so that each cell touches its six
/// neighbours and no others, and the picture is half a cell wider than the rect one.
/// </summary>
public sealed class HexPicturesSpec
{
    private static readonly MapGrid Hex = new(2, 2, LatticeKind.Hex);

    [Fact]
    public void Prototypes_should_shift_the_odd_row_by_half_a_tile()
    {
        using var dir = new ScratchDirectory();
        var path = dir.File("prototypes.png");
        // 4x4 white images, node 2 (row 1, column 0) black; tiles 4 + 1 pixels, odd row shifted by ⌊5/2⌋ = 2.
        var shape = new ImageShape(1, 4, 4);
        float[] images = [.. Fill(32, 1f), .. Fill(16, 0f), .. Fill(16, 1f)];

        MapRenderer.RenderPrototypes(path, images, Hex, shape, cellPadding: 1);

        // Unscaled width 2·5 + 2 + 1 = 13, height 11; scale ⌈400/13⌉ = 31.
        using var png = PngAssert.Decode(path);
        Assert.Equal((13 * 31, 11 * 31), (png.Width, png.Height));
        int At(double unscaled) => (int)(unscaled * 31);
        // Row 0's tile 0 spans x 1..4; row 1's tile 0 (node 2, black) spans x 3..6 and tile 1 (node 3, white) x 8..11.
        PngAssert.Colour(SKColors.White, png, At(1.5), At(1.5));
        PngAssert.Colour(new SKColor(96, 96, 96), png, At(1.5), At(7.5));
        PngAssert.Colour(SKColors.Black, png, At(3.5), At(7.5));
        PngAssert.Colour(SKColors.Black, png, At(6.5), At(7.5));
        PngAssert.Colour(SKColors.White, png, At(11.5), At(7.5));
        PngAssert.Colour(new SKColor(96, 96, 96), png, At(11.5), At(1.5));
    }

    [Fact]
    public void The_label_map_and_the_heat_maps_should_shift_the_odd_row_by_half_a_cell()
    {
        using var dir = new ScratchDirectory();
        using var font = new PixelFontPainter(MapRenderer.TextSize);
        var cell = MapRenderer.CellSize(2);
        int m = MapRenderer.Margin, half = cell / 2;

        MapRenderer.RenderLabelMap(dir.File("labels.png"), [0, 0, 1, 2], Hex, ["zero", "one", "two"], font);
        using (var labels = PngAssert.Decode(dir.File("labels.png")))
        {
            // Node 2 starts half a cell in: its row's first quarter cell is background, and node 3 reaches 2.5 cells.
            PngAssert.Colour(SKColors.White, labels, m + cell / 4, m + cell + half);
            PngAssert.Colour(Palettes.ForLabel(1), labels, m + half + 2, m + cell + half);
            PngAssert.Colour(Palettes.ForLabel(1), labels, m + cell + half / 2, m + cell + half);
            PngAssert.Colour(Palettes.ForLabel(2), labels, m + 2 * cell + half / 2, m + cell + half);
            PngAssert.Colour(Palettes.ForLabel(0), labels, m + cell + half / 2, m + half);
        }

        // Hits 0, 0, 3, 1: node 2 (odd row) is the maximum.
        MapRenderer.RenderHitMap(dir.File("hits.png"), [2, 2, 2, 3], Hex, font);
        using var hits = PngAssert.Decode(dir.File("hits.png"));
        PngAssert.Colour(SKColors.White, hits, m + 2, m + cell + 2);
        PngAssert.Colour(new SKColor(0xFD, 0xE7, 0x25), hits, m + half + 2, m + cell + 2);
        PngAssert.Colour(Palettes.Viridis(1 / 3.0), hits, m + 2 * cell + half - 3, m + cell + 2);
        // The colour bar sits right of the wider lattice.
        var barX = m + 2 * cell + half + 2 * m + MapRenderer.ColourBarWidth / 2;
        PngAssert.Colour(new SKColor(0xFD, 0xE7, 0x25), hits, barX, m + 1, tolerance: 3);
    }

    [Fact]
    public void Component_planes_should_be_half_a_cell_wider_with_the_odd_row_shifted()
    {
        using var dir = new ScratchDirectory();
        using var font = new PixelFontPainter(MapRenderer.PlaneTextSize);
        // One dimension, node 2 the maximum: cells of ⌈160/2⌉ = 80 pixels, the plane 2.5 cells wide.
        MapRenderer.RenderComponentPlanes(dir.File("planes.png"), [0f, 0f, 1f, 0f], Hex, dim: 1, font);
        using var png = PngAssert.Decode(dir.File("planes.png"));
        var (m, cell, title) = (MapRenderer.Margin, 80, MapRenderer.PlaneTitleHeight);
        Assert.Equal(2 * m + 200, png.Width);
        PngAssert.Colour(SKColors.White, png, m + 20, m + title + cell + 40);
        PngAssert.Colour(new SKColor(0xFD, 0xE7, 0x25), png, m + 60, m + title + cell + 40);
        PngAssert.Colour(new SKColor(0x44, 0x01, 0x54), png, m + 170, m + title + cell + 40);
    }

    private static float[] Fill(int n, float v) => Enumerable.Repeat(v, n).ToArray();
}
