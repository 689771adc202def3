using System.Text.Json;
using Microsoft.Playwright;
using Xunit.Abstractions;

namespace Dnm.Node.Tests.Serving;

/// <summary>
/// The explorer of a 100x100 map: a tiny mlp on the synthetic blobs, one pre-training epoch and two SOM iterations
/// (about 6 s on two cores), since pan and zoom need the lattice's size, not a good map.
/// </summary>
public sealed class LargeMapBrowser() : ExplorerBrowser(ServedMap.Trained(Training))
{
    public const int Side = 100;

    private static readonly string[] Training =
    [
        "--map", $"{Side}x{Side}", "--encoder", "mlp", "--hidden", "16", "--latent", "4", "--epochs", "0", "--pretrain-epochs", "1",
        "--som-iterations", "2", "--batch-size", "64", "--device", "cpu", "--threads", "1", "--lattice", "rect",
    ];
}

/// <summary>Pan and zoom on a 100x100 map in headless Chromium: what is drawn, where the nodes are, what a click selects.</summary>
[Collection(TorchCollection.Name)]
public sealed class LargeMapExplorerSpec(LargeMapBrowser browser, ITestOutputHelper output) : IClassFixture<LargeMapBrowser>
{
    private const int Side = LargeMapBrowser.Side, Nodes = Side * Side;

    [NeedsChromiumFact]
    public async Task The_fitted_page_should_draw_all_ten_thousand_nodes_with_and_without_an_overlay()
    {
        var page = await browser.OpenAsync(browser.Address.ToString(), []);
        Assert.Equal(Nodes, await page.EvaluateAsync<int>("window.dnmExplorer.state.nodes"));
        Assert.Equal(Nodes, await page.EvaluateAsync<int>("window.dnmExplorer.state.nodesDrawn"));
        Assert.Contains("100×100 map", await page.TextContentAsync("#summary"));
        var canvas = await CanvasAsync(page);
        var grid = await GridAsync(page);
        // The whole lattice lies inside the canvas.
        Assert.InRange(grid.Left, canvas.X, canvas.X + canvas.Width);
        Assert.InRange(grid.Left + Side * grid.Width, canvas.X, canvas.X + canvas.Width + 0.01);
        Assert.InRange(grid.Top + Side * grid.Height, canvas.Y, canvas.Y + canvas.Height + 0.01);
        await page.SelectOptionAsync("#overlay", "hits");
        await page.WaitForSelectorAsync("#lattice[data-overlay='hits']");
        await NextFrameAsync(page);
        Assert.Equal(Nodes, await page.EvaluateAsync<int>("window.dnmExplorer.state.nodesDrawn"));
        await page.CloseAsync();
    }

    [NeedsChromiumFact]
    public async Task Zooming_and_panning_should_draw_only_the_nodes_in_view_and_a_click_should_select_the_node_under_the_cursor()
    {
        var page = await browser.OpenAsync(browser.Address.ToString(), []);
        var canvas = await CanvasAsync(page);
        var (cx, cy) = (Math.Round(canvas.X + canvas.Width / 2), Math.Round(canvas.Y + canvas.Height / 2));
        var fitted = await GridAsync(page);

        // The wheel zooms about the cursor: the lattice point under it stays there, cells grow, fewer nodes are drawn.
        var (px, py) = (cx - 100, cy + 60);
        await page.Mouse.MoveAsync((float)px, (float)py);
        await page.Mouse.WheelAsync(0, -600);
        var wheeled = await ChangedGridAsync(page, fitted);
        Assert.Equal(fitted.Width * Math.Exp(0.9), wheeled.Width, 6);
        AssertSamePoint(fitted, wheeled, px, py);
        var drawn = await DrawnAsync(page);
        Assert.InRange(drawn, 1, Nodes - 1);
        Assert.Equal(Visible(wheeled, canvas), drawn);

        // + zooms by 1.5 about the canvas's centre.
        await page.ClickAsync("#zoom-in");
        var zoomed = await ChangedGridAsync(page, wheeled);
        Assert.Equal(wheeled.Width * 1.5, zoomed.Width, 6);
        AssertSamePoint(wheeled, zoomed, canvas.X + canvas.Width / 2, canvas.Y + canvas.Height / 2);
        var zoomedDrawn = await DrawnAsync(page);
        Assert.True(zoomedDrawn < drawn, $"zooming in drew {zoomedDrawn} nodes, {drawn} before");
        Assert.Equal(Visible(zoomed, canvas), zoomedDrawn);

        // A drag pans by exactly the pointer's movement.
        await DragAsync(page, cx, cy, -150, -100);
        var panned = await ChangedGridAsync(page, zoomed);
        Assert.Equal(zoomed.Left - 150, panned.Left, 3);
        Assert.Equal(zoomed.Top - 100, panned.Top, 3);
        Assert.Equal(zoomed.Width, panned.Width, 6);
        Assert.Equal(Visible(panned, canvas), await DrawnAsync(page));
        Assert.Equal("", await page.GetAttributeAsync("#lattice", "data-selected"));

        // A click off a node's centre (but inside its cell) selects that node: one near the middle, one near a corner.
        foreach (var (fx, fy) in new[] { (0.5, 0.5), (0.1, 0.12) })
        {
            var (col, row) = ((int)((canvas.X + fx * canvas.Width - panned.Left) / panned.Width), (int)((canvas.Y + fy * canvas.Height - panned.Top) / panned.Height));
            Assert.InRange(col, 0, Side - 1);
            Assert.InRange(row, 0, Side - 1);
            var centre = await page.EvaluateAsync<JsonElement>($"window.dnmExplorer.nodeCenter({row * Side + col})");
            var (x, y) = (centre.GetProperty("x").GetDouble() + 0.3 * panned.Width, centre.GetProperty("y").GetDouble() - 0.3 * panned.Height);
            await page.Mouse.ClickAsync((float)x, (float)y);
            // The click's events have been handled when it returns, and the page selects on pointerup.
            Assert.Equal($"{row},{col}", await page.GetAttributeAsync("#lattice", "data-selected"));
            Assert.Equal(row * Side + col, await page.EvaluateAsync<int>("window.dnmExplorer.state.selected"));
            await page.WaitForSelectorAsync($"#node h2:has-text('Node ({row}, {col})')");
            // A click is not a drag: the view stays where it was.
            Assert.Equal(panned, await GridAsync(page));
        }
        await page.CloseAsync();
    }

    [NeedsChromiumFact]
    public async Task A_zoom_and_pan_round_trip_from_the_whole_map_should_come_back_to_the_whole_map()
    {
        var page = await browser.OpenAsync(browser.Address.ToString(), []);
        var canvas = await CanvasAsync(page);
        var (cx, cy) = (Math.Round(canvas.X + canvas.Width / 2), Math.Round(canvas.Y + canvas.Height / 2));
        var start = await GridAsync(page);
        var frames = await page.EvaluateAsync<int>("window.dnmExplorer.state.frames");
        // Measured in the page: from before the first input to the frame after the last one, input dispatch included.
        var began = await page.EvaluateAsync<double>("performance.now()");
        await page.Mouse.MoveAsync((float)cx, (float)cy);
        await page.Mouse.WheelAsync(0, -600);
        await ChangedGridAsync(page, start);
        await DragAsync(page, cx, cy, 200, 120);
        await DragAsync(page, cx + 200, cy + 120, -200, -120);
        await page.Mouse.MoveAsync((float)cx, (float)cy);
        await page.Mouse.WheelAsync(0, 600);
        await UntilAsync(page, "window.dnmExplorer.nodeCenter(1).x - window.dnmExplorer.nodeCenter(0).x", w => Math.Abs(w - start.Width) < 1e-6);
        await NextFrameAsync(page);
        var elapsed = await page.EvaluateAsync<double>("performance.now()") - began;
        Assert.True(await page.EvaluateAsync<int>("window.dnmExplorer.state.frames") > frames, "no frame was drawn");
        // Back where it started, the whole map drawn again.
        var end = await GridAsync(page);
        Assert.Equal(start.Left, end.Left, 3);
        Assert.Equal(start.Top, end.Top, 3);
        Assert.Equal(Nodes, await DrawnAsync(page));
        var drawMs = await page.EvaluateAsync<double>("window.dnmExplorer.state.drawMs");
        Assert.True(drawMs > 0, "the page did not time its draw");
        // The times are reported, not asserted: the 2 s target is met in scripts/bench-explorer.sh, on a quiet machine.
        output.WriteLine($"round trip {elapsed:F0} ms; the whole map drawn in {drawMs:F1} ms");
        await page.CloseAsync();
    }

    [NeedsChromiumFact]
    public async Task A_wheel_that_scrolls_by_lines_should_zoom_as_one_that_scrolls_by_the_same_pixels()
    {
        var page = await browser.OpenAsync(browser.Address.ToString(), []);
        var canvas = await CanvasAsync(page);
        double[] at = [canvas.X + canvas.Width / 2, canvas.Y + canvas.Height / 2];
        var fitted = await GridAsync(page);
        // Firefox's mouse wheel: three lines a notch (deltaMode 1), about 16 pixels each.
        const string wheel = "([x, y, delta, mode]) => document.getElementById('lattice').dispatchEvent(" +
                             "new WheelEvent('wheel', { clientX: x, clientY: y, deltaY: delta, deltaMode: mode, cancelable: true }))";
        await page.EvaluateAsync(wheel, new[] { at[0], at[1], -3, 1 });
        var lines = await ChangedGridAsync(page, fitted);
        await page.ClickAsync("#zoom-fit");
        await ChangedGridAsync(page, lines);
        await page.EvaluateAsync(wheel, new[] { at[0], at[1], -48, 0 });
        var pixels = await ChangedGridAsync(page, fitted);
        Assert.True(lines.Width > fitted.Width * 1.05, $"a notch of three lines zoomed by {lines.Width / fitted.Width:F4}");
        Assert.Equal(pixels.Width, lines.Width, 6);
        await page.CloseAsync();
    }

    /// <summary>Where the lattice is on screen (client pixels): node 0's cell's top-left corner and a cell's size.</summary>
    private sealed record Grid(double Left, double Top, double Width, double Height);

    private static async Task<Grid> GridAsync(IPage page)
    {
        var g = await page.EvaluateAsync<JsonElement>(
            $"() => {{ const a = window.dnmExplorer.nodeCenter(0), b = window.dnmExplorer.nodeCenter({Side + 1}); return [a.x, a.y, b.x - a.x, b.y - a.y]; }}");
        double x = g[0].GetDouble(), y = g[1].GetDouble(), w = g[2].GetDouble(), h = g[3].GetDouble();
        return new Grid(x - w / 2, y - h / 2, w, h);
    }

    /// <summary>The grid once the page has moved it from <paramref name="before"/> and drawn the frame after.</summary>
    private static async Task<Grid> ChangedGridAsync(IPage page, Grid before)
    {
        for (var deadline = DateTime.UtcNow.AddSeconds(10); ; await Task.Delay(20))
        {
            var now = await GridAsync(page);
            if (now != before)
            {
                await NextFrameAsync(page);
                return now;
            }
            Assert.True(DateTime.UtcNow < deadline, "the view did not change");
        }
    }

    private static async Task UntilAsync(IPage page, string expression, Func<double, bool> done)
    {
        for (var deadline = DateTime.UtcNow.AddSeconds(10); !done(await page.EvaluateAsync<double>(expression)); await Task.Delay(20))
            Assert.True(DateTime.UtcNow < deadline, $"{expression} did not reach the expected value");
    }

    // Two animation frames: the draw a change asked for has run by then. (A function, not a string to evaluate: the CSP stays on.)
    private static Task NextFrameAsync(IPage page) =>
        page.EvaluateAsync("() => new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))");

    private static Task<int> DrawnAsync(IPage page) => page.EvaluateAsync<int>("window.dnmExplorer.state.nodesDrawn");

    private static async Task<LocatorBoundingBoxResult> CanvasAsync(IPage page) =>
        await page.Locator("#lattice").BoundingBoxAsync() ?? throw new InvalidOperationException("the canvas is not laid out");

    private static async Task DragAsync(IPage page, double x, double y, double dx, double dy)
    {
        await page.Mouse.MoveAsync((float)x, (float)y);
        await page.Mouse.DownAsync();
        await page.Mouse.MoveAsync((float)(x + dx), (float)(y + dy), new MouseMoveOptions { Steps = 5 });
        await page.Mouse.UpAsync();
    }

    /// <summary>The lattice point under client pixel (<paramref name="x"/>, <paramref name="y"/>) is the same in both views.</summary>
    private static void AssertSamePoint(Grid before, Grid after, double x, double y)
    {
        Assert.Equal((x - before.Left) / before.Width, (x - after.Left) / after.Width, 4);
        Assert.Equal((y - before.Top) / before.Height, (y - after.Top) / after.Height, 4);
    }

    /// <summary>How many cells overlap the canvas: those the page should draw.</summary>
    private static int Visible(Grid grid, LocatorBoundingBoxResult canvas)
    {
        static int Count(double origin, double cell, double low, double high) =>
            Enumerable.Range(0, Side).Count(i => origin + (i + 1) * cell > low && origin + i * cell < high);
        return Count(grid.Left, grid.Width, canvas.X, canvas.X + canvas.Width) * Count(grid.Top, grid.Height, canvas.Y, canvas.Y + canvas.Height);
    }
}
