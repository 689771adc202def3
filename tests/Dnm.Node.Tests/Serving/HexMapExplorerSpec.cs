using System.Text.Json;
using Microsoft.Playwright;

namespace Dnm.Node.Tests.Serving;

/// <summary>The explorer of a 4x4 toroidal hex map trained on the synthetic blobs (the tiny run's settings).</summary>
public sealed class HexMapBrowser() : ExplorerBrowser(ServedMap.Trained([.. TrainedRunFixture.TinyRun, "--lattice", "hex", "--toroidal"]));

/// <summary>
/// A hex map in headless Chromium: the odd rows are drawn half a cell to the right, as in the map's PNGs, and a click
/// selects the node whose offset cell is under the cursor.
/// </summary>
[Collection(TorchCollection.Name)]
public sealed class HexMapExplorerSpec(HexMapBrowser browser) : IClassFixture<HexMapBrowser>
{
    [NeedsChromiumFact]
    public async Task The_page_should_say_hex_and_toroidal_and_draw_every_node()
    {
        using var map = JsonDocument.Parse(await browser.Client.GetStringAsync("v1/map"));
        Assert.Equal("hex", map.RootElement.GetProperty("lattice").GetString());
        Assert.True(map.RootElement.GetProperty("toroidal").GetBoolean());

        var page = await browser.OpenAsync(browser.Address.ToString(), []);
        Assert.Equal(16, await page.EvaluateAsync<int>("window.dnmExplorer.state.nodesDrawn"));
        Assert.Equal("hex", await page.GetAttributeAsync("#lattice", "data-lattice"));
        Assert.Contains("4×4 hex toroidal map", await page.TextContentAsync("#summary"));
        await page.CloseAsync();
    }

    [NeedsChromiumFact]
    public async Task Odd_rows_should_sit_half_a_cell_right_and_a_click_should_select_the_offset_cell_under_it()
    {
        var page = await browser.OpenAsync(browser.Address.ToString(), []);
        var (x0, y0) = await CentreAsync(page, 0);
        var (x1, _) = await CentreAsync(page, 1);
        var (x4, y4) = await CentreAsync(page, 4);  // row 1, column 0
        var (x8, _) = await CentreAsync(page, 8);   // row 2, column 0
        var w = x1 - x0;
        Assert.True(w > 10, $"cells are {w} pixels wide");
        Assert.Equal(x0 + w / 2, x4, 3);
        Assert.Equal(x0, x8, 3);

        // Left of node 4's cell, inside the lattice's rows: no node is drawn there (the page's background), and none is hit.
        int[] background = [22, 24, 29];
        Assert.Equal(background, await PixelAsync(page, x0 - w / 2 + w / 8, y4));
        Assert.NotEqual(background, await PixelAsync(page, x0 - w / 2 + w / 8, y0));

        // x4 + 0.4w lies in column 1 of an unshifted row, but in node 4's offset cell; x4 + 0.6w in node 5's.
        await page.Mouse.ClickAsync((float)(x4 + 0.4 * w), (float)y4);
        Assert.Equal("1,0", await page.GetAttributeAsync("#lattice", "data-selected"));
        await page.WaitForSelectorAsync("#node h2:has-text('Node (1, 0)')");
        await page.Mouse.ClickAsync((float)(x4 + 0.6 * w), (float)y4);
        Assert.Equal("1,1", await page.GetAttributeAsync("#lattice", "data-selected"));
        // The same x in row 0 (unshifted) is node 1.
        await page.Mouse.ClickAsync((float)(x4 + 0.4 * w), (float)y0);
        Assert.Equal("0,1", await page.GetAttributeAsync("#lattice", "data-selected"));
        await page.CloseAsync();
    }

    private static async Task<(double X, double Y)> CentreAsync(IPage page, int node)
    {
        var c = await page.EvaluateAsync<JsonElement>($"window.dnmExplorer.nodeCenter({node})");
        return (c.GetProperty("x").GetDouble(), c.GetProperty("y").GetDouble());
    }

    /// <summary>The canvas's RGB at client pixel (x, y). A function, not a string: the page's CSP stays on.</summary>
    private static async Task<int[]> PixelAsync(IPage page, double x, double y)
    {
        var rgba = await page.EvaluateAsync<int[]>(
            "([x, y]) => { const c = document.getElementById('lattice'), r = c.getBoundingClientRect(), d = window.devicePixelRatio || 1;" +
            " return Array.from(c.getContext('2d').getImageData(Math.floor((x - r.left) * d), Math.floor((y - r.top) * d), 1, 1).data); }",
            new[] { x, y });
        return rgba[..3];
    }
}
