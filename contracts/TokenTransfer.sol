// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

/// @notice The part of ERC-20 the Kaisar contracts call.
interface IERC20 {
    function transfer(address to, uint256 amount) external returns (bool);
    function transferFrom(address from, address to, uint256 amount) external returns (bool);
    function balanceOf(address account) external view returns (uint256);
}

/// @notice ERC-20 calls that also accept tokens returning nothing (USDT on Ethereum), and
/// revert on a `false` return or a call to an address without code.
library TokenTransfer {
    error TokenTransferFailed();

    function send(IERC20 token, address to, uint256 amount) internal {
        _call(token, abi.encodeCall(IERC20.transfer, (to, amount)));
    }

    function pull(IERC20 token, address from, address to, uint256 amount) internal {
        _call(token, abi.encodeCall(IERC20.transferFrom, (from, to, amount)));
    }

    function _call(IERC20 token, bytes memory data) private {
        (bool ok, bytes memory ret) = address(token).call(data);
        if (!ok) revert TokenTransferFailed();
        if (ret.length == 0) {
            if (address(token).code.length == 0) revert TokenTransferFailed();
        } else if (ret.length != 32 || abi.decode(ret, (uint256)) != 1) {
            revert TokenTransferFailed();
        }
    }
}
