using Dnm.Core.Explore;
using Dnm.Node.Serving;
using Microsoft.Playwright;

namespace Dnm.Node.Tests.Serving;

/// <summary>
/// The explorer of the tiny map (<see cref="ServedMap"/>, its whole dataset placed) served on a loopback port, and
/// Debian's headless Chromium driven by Playwright through its executable path: Playwright downloads no browser.
/// </summary>
public class ExplorerBrowser : IAsyncLifetime
{
    public ExplorerBrowser() : this(new ServedMap()) { }

    /// <summary>The explorer of <paramref name="map"/>, which this fixture owns and disposes.</summary>
    protected ExplorerBrowser(ServedMap map) => Map = map;

    public ServedMap Map { get; }
    public MapExplorer Explorer { get; private set; } = null!;
    public Uri Address { get; private set; } = null!;
    public HttpClient Client { get; private set; } = null!;
    public IBrowser Browser { get; private set; } = null!;
    private IPlaywright? playwright;

    public async Task InitializeAsync()
    {
        Explorer = MapExplorer.Place(Map.Placer, Map.Data, CancellationToken.None);
        var (server, client) = await Map.ServeAsync(explorer: Explorer, page: true);
        Address = new Uri(server.Urls[0]);
        Client = client;
        var chromium = Chromium.Find() ?? throw new InvalidOperationException(Chromium.Missing);
        playwright = await Playwright.CreateAsync();
        Browser = await playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
        {
            ExecutablePath = chromium,
            Headless = true,
            // Root in CI containers has no user namespace for Chromium's sandbox.
            Args = ["--no-sandbox", "--disable-gpu"],
        });
    }

    /// <summary>A new page of <paramref name="width"/> x <paramref name="height"/>, with every request it makes logged in <paramref name="requests"/>.</summary>
    public async Task<IPage> OpenAsync(string url, List<string> requests, int width = 1200, int height = 800)
    {
        var page = await Browser.NewPageAsync(new BrowserNewPageOptions { ViewportSize = new ViewportSize { Width = width, Height = height } });
        page.Request += (_, request) => { lock (requests) requests.Add(request.Url); };
        page.SetDefaultTimeout(30_000);
        await page.GotoAsync(url);
        await page.WaitForSelectorAsync("body[data-ready=true]");
        return page;
    }

    public async Task DisposeAsync()
    {
        if (Browser is not null) await Browser.DisposeAsync();
        playwright?.Dispose();
        Map.Dispose();
    }
}

/// <summary>Where Debian's Chromium is (DNM_CHROMIUM overrides); CI installs it in .ci/run.</summary>
public static class Chromium
{
    public const string Missing = "chromium is not installed: apt-get install --no-install-recommends chromium (CI installs it in .ci/run), or set DNM_CHROMIUM";

    public static string? Find() =>
        new[] { Environment.GetEnvironmentVariable("DNM_CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser" }
            .FirstOrDefault(p => !string.IsNullOrEmpty(p) && File.Exists(p));
}

/// <summary>
/// A fact that needs Chromium. Without it the fact is skipped on a developer's machine, but runs (and fails, saying
/// what to install) where CI=true, so CI can never pass by skipping it.
/// </summary>
public sealed class NeedsChromiumFactAttribute : FactAttribute
{
    public NeedsChromiumFactAttribute()
    {
        if (Chromium.Find() is null && !string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase))
            Skip = Chromium.Missing + "; with CI=true this fails instead";
    }
}
