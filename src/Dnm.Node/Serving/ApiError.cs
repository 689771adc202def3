using Microsoft.AspNetCore.Http;

namespace Dnm.Node.Serving;

/// <summary>
/// The body of every refused request: a stable <paramref name="Code"/> for programs and a <paramref name="Message"/> for
/// people that names the problem and the fix.
/// </summary>
public sealed record ApiError(string Code, string Message)
{
    public IResult Result(int status) => Results.Json(new { error = this }, MapServer.Json, statusCode: status);
}

/// <summary>A request the server refuses: the status (4xx, or 503 when busy) and the error to send.</summary>
public sealed class ApiException(int status, string code, string message) : Exception(message)
{
    public int Status { get; } = status;
    public ApiError Error { get; } = new(code, message);
}
