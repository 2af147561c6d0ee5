// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

import "./Operated.sol";

/// @title RewardPoints
/// @notice Non-transferable reward points (no decimals). Authorized minters (the escrow) and
/// the operator mint; authorized spenders (the escrow) burn them when a renter uses them as
/// a discount. The owner chooses minters and spenders.
contract RewardPoints is Operated {
    error NotMinter();
    error NotSpender();
    error InsufficientPoints();

    event MinterSet(address indexed account, bool allowed);
    event SpenderSet(address indexed account, bool allowed);
    event Minted(address indexed to, uint256 amount);
    event Spent(address indexed from, uint256 amount);

    mapping(address => uint256) public balanceOf;
    mapping(address => bool) public isMinter;
    mapping(address => bool) public isSpender;

    function setMinter(address account, bool allowed) external onlyOwner {
        isMinter[account] = allowed;
        emit MinterSet(account, allowed);
    }

    function setSpender(address account, bool allowed) external onlyOwner {
        isSpender[account] = allowed;
        emit SpenderSet(account, allowed);
    }

    function mint(address to, uint256 amount) external {
        if (!isMinter[msg.sender] && msg.sender != operator) revert NotMinter();
        if (to == address(0)) revert ZeroAddress();
        balanceOf[to] += amount;
        emit Minted(to, amount);
    }

    function spend(address from, uint256 amount) external {
        if (!isSpender[msg.sender]) revert NotSpender();
        uint256 bal = balanceOf[from];
        if (bal < amount) revert InsufficientPoints();
        unchecked {
            balanceOf[from] = bal - amount;
        }
        emit Spent(from, amount);
    }
}
