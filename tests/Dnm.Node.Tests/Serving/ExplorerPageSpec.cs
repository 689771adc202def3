using System.Text.Json;
using Dnm.Node.Serving;
using Microsoft.Playwright;

namespace Dnm.Node.Tests.Serving;

/// <summary>The explorer page in a real browser (headless Chromium), against `dnm map`'s placements of the same images.</summary>
[Collection(TorchCollection.Name)]
public sealed class ExplorerPageSpec(ExplorerBrowser browser) : IClassFixture<ExplorerBrowser>
{
    private const int Nodes = 16;

    [NeedsChromiumFact]
    public async Task The_page_should_draw_every_node_of_the_lattice()
    {
        var page = await browser.OpenAsync(browser.Address.ToString(), []);
        Assert.Equal(Nodes, await page.EvaluateAsync<int>("window.dnmExplorer.state.nodesDrawn"));
        Assert.Equal($"{Nodes}", await page.GetAttributeAsync("#lattice", "data-nodes-drawn"));
        Assert.Equal(4, await page.EvaluateAsync<int>("window.dnmExplorer.state.rows"));
        Assert.Contains("4×4 map", await page.TextContentAsync("#summary"));
        await page.CloseAsync();
    }

    [NeedsChromiumFact]
    public async Task Switching_overlays_should_redraw_with_a_legend()
    {
        var page = await browser.OpenAsync(browser.Address.ToString(), []);
        foreach (var (overlay, legend) in new[]
                 {
                     ("umatrix", "U-matrix"), ("hits", "Hit map"), ("labels", "Label map"), ("qe", "QE per node"), ("component", "latent dimension 0"),
                 })
        {
            await page.SelectOptionAsync("#overlay", overlay);
            // Selectors, not WaitForFunction: the page's CSP forbids evaluating strings, and the specs keep it on.
            await page.WaitForSelectorAsync($"#lattice[data-overlay='{overlay}']");
            await page.WaitForSelectorAsync($"#legend:has-text('{legend}')");
            Assert.Equal(Nodes, await page.EvaluateAsync<int>("window.dnmExplorer.state.nodesDrawn"));
        }
        // The label legend names the classes the map's nodes carry; a component plane follows the chosen dimension.
        await page.SelectOptionAsync("#overlay", "labels");
        var names = await page.Locator("#legend .legend-item").AllTextContentsAsync();
        // Class names that are their own index (the IDX digits) are written once: "0", not "0: 0".
        Assert.Contains("0", names.Select(n => n.Trim()));
        await page.SelectOptionAsync("#overlay", "component");
        await page.FillAsync("#dimension", "5");
        await page.Locator("#dimension").DispatchEventAsync("change");
        await page.WaitForSelectorAsync("#legend:has-text('latent dimension 5')");
        await page.CloseAsync();
    }

    [NeedsChromiumFact]
    public async Task Clicking_a_node_should_show_its_images_nearest_first_with_their_keys()
    {
        var page = await browser.OpenAsync(browser.Address.ToString(), []);
        // The busiest node, from `dnm map`'s placements.csv: its samples nearest first (ties by index).
        var busiest = browser.Map.Mapped.GroupBy(s => s.Row * 4 + s.Col).OrderByDescending(g => g.Count()).First();
        var expected = busiest.OrderBy(s => s.Distance).ThenBy(s => s.Index).ToArray();
        var centre = await page.EvaluateAsync<JsonElement>($"window.dnmExplorer.nodeCenter({busiest.Key})");
        await page.Mouse.ClickAsync(centre.GetProperty("x").GetSingle(), centre.GetProperty("y").GetSingle());
        await page.WaitForSelectorAsync("#members .member");
        var shown = Math.Min(expected.Length, 48);
        Assert.Equal(shown, await page.Locator("#members .member").CountAsync());
        var keys = await page.Locator("#members .member").EvaluateAllAsync<string[]>("els => els.map(e => e.dataset.key)");
        Assert.Equal(expected.Take(shown).Select(s => s.Key), keys);
        var labels = await page.Locator("#members .member").EvaluateAllAsync<int[]>("els => els.map(e => Number(e.dataset.label))");
        Assert.Equal(expected.Take(shown).Select(s => s.Label), labels);
        Assert.Contains($"{expected.Length} samples", await page.TextContentAsync("#members-info"));
        Assert.Equal($"{busiest.Key / 4},{busiest.Key % 4}", await page.GetAttributeAsync("#lattice", "data-selected"));
        await page.CloseAsync();
    }

    [NeedsChromiumFact]
    public async Task An_uploaded_image_should_highlight_the_node_dnm_map_reports_for_it()
    {
        var page = await browser.OpenAsync(browser.Address.ToString(), []);
        foreach (var index in new[] { 11, 130 })
        {
            var file = browser.Map.Directory.File($"upload-{index}.png");
            await File.WriteAllBytesAsync(file, browser.Map.Png(index));
            await page.SetInputFilesAsync("#upload", file);
            var expected = browser.Map.Mapped[index];
            // Wait for this file's answer: both images may land on one node, whose highlight the first already set.
            await page.WaitForSelectorAsync($"#placed h2:has-text('upload-{index}.png lands on')");
            Assert.Contains($"lands on ({expected.Row}, {expected.Col})", await page.TextContentAsync("#placed"));
            Assert.Equal($"{expected.Row},{expected.Col}", await page.GetAttributeAsync("#lattice", "data-highlight"));
        }
        await page.CloseAsync();
    }

    [NeedsChromiumFact]
    public async Task The_page_should_make_no_request_to_any_other_host()
    {
        var requests = new List<string>();
        var page = await browser.OpenAsync(browser.Address.ToString(), requests);
        // Everything the page can do: overlays, a click with its thumbnails, an upload, zooming and panning.
        foreach (var overlay in new[] { "umatrix", "hits", "labels", "qe", "component" })
        {
            await page.SelectOptionAsync("#overlay", overlay);
            await page.WaitForSelectorAsync($"#lattice[data-overlay='{overlay}']");
        }
        // A node with images (node 0 may hold none), so that the click asks for a thumbnail sheet.
        var held = browser.Map.Mapped.GroupBy(s => s.Row * 4 + s.Col).OrderByDescending(g => g.Count()).First().Key;
        var centre = await page.EvaluateAsync<JsonElement>($"window.dnmExplorer.nodeCenter({held})");
        await page.Mouse.ClickAsync(centre.GetProperty("x").GetSingle(), centre.GetProperty("y").GetSingle());
        var file = browser.Map.Directory.File("upload-any.png");
        await File.WriteAllBytesAsync(file, browser.Map.Png(3));
        await page.SetInputFilesAsync("#upload", file);
        await page.WaitForSelectorAsync("#lattice:not([data-highlight=''])");
        await page.ClickAsync("#zoom-in");
        await page.Mouse.WheelAsync(0, -300);
        await page.WaitForLoadStateAsync(LoadState.NetworkIdle);
        string[] seen;
        lock (requests) seen = [.. requests];
        Assert.Contains(seen, u => u.Contains("/v1/place", StringComparison.Ordinal));
        Assert.Contains(seen, u => u.Contains("members.png", StringComparison.Ordinal));
        foreach (var url in seen)
            Assert.True(new Uri(url).Authority == browser.Address.Authority, $"the page requested {url}, not from {browser.Address.Authority}");
        await page.CloseAsync();
    }

    [NeedsChromiumFact]
    public async Task The_static_copy_should_open_from_disk_with_its_nodes_and_members_and_no_request_elsewhere()
    {
        var dir = browser.Map.Directory.File("static");
        ExplorerSite.WriteStatic(browser.Explorer, dir, membersPerNode: 10);
        var requests = new List<string>();
        var page = await browser.OpenAsync(new Uri(Path.Combine(dir, "index.html")).AbsoluteUri, requests);
        Assert.Equal(Nodes, await page.EvaluateAsync<int>("window.dnmExplorer.state.nodesDrawn"));
        await page.SelectOptionAsync("#overlay", "labels");
        await page.WaitForSelectorAsync("#legend:has-text('Label map')");
        var busiest = browser.Map.Mapped.GroupBy(s => s.Row * 4 + s.Col).OrderByDescending(g => g.Count()).First();
        var expected = busiest.OrderBy(s => s.Distance).ThenBy(s => s.Index).Take(10).Select(s => s.Key);
        var centre = await page.EvaluateAsync<JsonElement>($"window.dnmExplorer.nodeCenter({busiest.Key})");
        await page.Mouse.ClickAsync(centre.GetProperty("x").GetSingle(), centre.GetProperty("y").GetSingle());
        await page.WaitForSelectorAsync("#members .member");
        Assert.Equal(expected, await page.Locator("#members .member").EvaluateAllAsync<string[]>("els => els.map(e => e.dataset.key)"));
        // Placing needs the model: the static page says so instead of trying.
        Assert.True(await page.IsDisabledAsync("#upload"));
        await page.WaitForLoadStateAsync(LoadState.NetworkIdle);
        lock (requests)
            foreach (var url in requests)
                Assert.True(url.StartsWith("file://", StringComparison.Ordinal), $"the static page requested {url}");
        await page.CloseAsync();
    }
}
